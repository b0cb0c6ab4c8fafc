"""moto's server for Amazon SNS (no real local SNS exists): an SQS queue subscribed to the
topic receives what the product publishes, and the test reads it back."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.services._proc import free_port, start, stop, wait_until


@dataclass
class SnsServer:
    proc: subprocess.Popen
    port: int

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, service: str):
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint, region_name="sa-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def reset(self) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST"))

    def topic_with_queue(self, name: str = "meccano-alerts") -> tuple[str, str]:
        """Create a topic and an SQS queue subscribed to it; returns (topic_arn, queue_url)."""
        sns, sqs = self.client("sns"), self.client("sqs")
        topic = sns.create_topic(Name=name)["TopicArn"]
        queue_url = sqs.create_queue(QueueName=f"{name}-q")["QueueUrl"]
        qarn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=qarn)
        return topic, queue_url

    def received(self, queue_url: str) -> list[dict]:
        """Every notification delivered to the queue so far (Subject, Message, ...)."""
        sqs = self.client("sqs")
        out: list[dict] = []
        while True:
            got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            msgs = got.get("Messages", [])
            if not msgs:
                return out
            for m in msgs:
                out.append(json.loads(m["Body"]))
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])

    def stop(self) -> None:
        stop(self.proc, grace=5)


def start_sns(base: Path) -> SnsServer:
    base.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = base / "moto.log"
    exe = Path(sys.executable).parent / "moto_server"
    proc = start([str(exe), "-H", "127.0.0.1", "-p", str(port)], log)
    server = SnsServer(proc=proc, port=port)
    wait_until(lambda: urllib.request.urlopen(f"{server.endpoint}/moto-api/").status == 200, 30, "moto", log)
    return server
