"""Encode records as Avro in Confluent's wire format with Confluent's own client.

Reads one JSON document on stdin:
  {"registry": URL, "topic": T, "schemas": [schema text, ...],
   "records": [{"schema": i, "value": {...}} | {"raw": "text"}, ...]}
and prints a JSON list with the hex of each encoded message, in order. Each schema gets its
own `AvroSerializer`, which registers it through the registry's REST API (the subject is
`<topic>-value`) and writes the header with the id the registry gave. A `raw` record is
passed through as its UTF-8 bytes (a message that is not Avro at all).
"""

import json
import sys

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext


def main():
    job = json.load(sys.stdin)
    client = SchemaRegistryClient({"url": job["registry"]})
    serializers = [
        AvroSerializer(client, text, conf={"auto.register.schemas": True})
        for text in job["schemas"]
    ]
    ctx = SerializationContext(job["topic"], MessageField.VALUE)
    out = []
    for r in job["records"]:
        if "raw" in r:
            out.append(r["raw"].encode("utf-8").hex())
        else:
            out.append(serializers[r["schema"]](r["value"], ctx).hex())
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
