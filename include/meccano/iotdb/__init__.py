"""The gateway's IOTDB: schema, access, shared queries."""
