"""Reads YAML documents (a rendered kustomization) from standard input and prints them as one
JSON list, with PyYAML's safe loader."""
import json
import sys

import yaml

json.dump([d for d in yaml.safe_load_all(sys.stdin) if d is not None], sys.stdout)
