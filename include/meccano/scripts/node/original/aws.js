'use strict';
// require('../aws') of an original plugin: Amazon SNS with the AWS_* settings.
//   aws.sns.publish({Message, Subject, TopicArn}, callback)   (the original's SDK v2 call shape; returns a promise too)
//   aws.publish(message, subject)                             (to AWS_TOPICARN; a promise)
//   aws.snsClient                                             (the SDK v3 SNSClient itself)
// S3 is not provided: the S3 export is the s3_export DAG here.
const { SNSClient, PublishCommand } = require('@aws-sdk/client-sns');

const env = process.env;
const CLOSE = Symbol.for('meccano.close');

function endpoint() {
  const url = env.AWS_ENDPOINTURL || '';
  if (!url || url.includes('://')) return url || undefined;
  return `${env.AWS_SSLENABLED === 'true' ? 'https' : 'http'}://${url}`;
}

let client = null;
function snsClient() {
  if (client === null) {
    const options = { region: env.AWS_REGION || 'sa-east-1', endpoint: endpoint() };
    if (env.AWS_ACCESSKEYID) {
      options.credentials = { accessKeyId: env.AWS_ACCESSKEYID, secretAccessKey: env.AWS_SECRETACCESSKEY || '' };
    }
    client = new SNSClient(options);
  }
  return client;
}

function publishWith(params, callback) {
  const request = { TopicArn: env.AWS_TOPICARN || undefined, ...params };
  const done = snsClient().send(new PublishCommand(request));
  if (typeof callback === 'function') {
    done.then((data) => callback(null, data), (err) => callback(err));
    return undefined;
  }
  return done;
}

module.exports = {
  region: env.AWS_REGION || '',
  topicArn: env.AWS_TOPICARN || '',
  sns: { publish: publishWith },
  publish: (message, subject) => publishWith({ Message: String(message), Subject: subject }),
  get snsClient() { return snsClient(); },
  [CLOSE]: () => { if (client !== null) client.destroy(); },
};
