"""Parses Prometheus text from standard input with prometheus_client's own parser and prints
every sample as a JSON list of [name, labels, value]; text that does not parse is an error."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

samples = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        samples.append([sample.name, sample.labels, sample.value])
json.dump(samples, sys.stdout)
