#!/usr/bin/env python3
"""Reads ImageQueue's Prometheus files for the OpsTests and prints what they say as JSON.

Usage: ops_config.py PROMETHEUS_YML ALERTS_YML

Prints one JSON object on stdout:
  {"rule_files": [...], "scrape_jobs": {"<job>": {"targets": [...], "metrics_path": P}},
   "alerts": [{"group", "alert", "expr", "for", "labels", "annotations"}]}
Exit: 0 parsed; 1 a file is not valid YAML or not shaped like a Prometheus file (stderr
says which and why); 2 bad usage or PyYAML missing (ops/install-deps.sh --tests installs it).
"""

import json
import sys

try:
    import yaml
except ImportError:
    print("PyYAML is not installed (bash ops/install-deps.sh --tests)", file=sys.stderr)
    sys.exit(2)


def load(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as error:
        print(f"{path}: {error}", file=sys.stderr)
        sys.exit(1)


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        sys.exit(2)
    config, rules = load(sys.argv[1]), load(sys.argv[2])
    if not isinstance(config, dict) or not isinstance(rules, dict):
        print("both files must be YAML mappings", file=sys.stderr)
        sys.exit(1)
    jobs = {}
    for job in config.get("scrape_configs") or []:
        targets = [t for static in job.get("static_configs") or [] for t in static.get("targets") or []]
        jobs[job["job_name"]] = {"targets": targets, "metrics_path": job.get("metrics_path", "/metrics")}
    alerts = []
    for group in rules.get("groups") or []:
        for rule in group.get("rules") or []:
            if "alert" in rule:
                alerts.append({"group": group.get("name"), "alert": rule["alert"], "expr": str(rule.get("expr", "")),
                               "for": rule.get("for"), "labels": rule.get("labels") or {},
                               "annotations": rule.get("annotations") or {}})
    json.dump({"rule_files": config.get("rule_files") or [], "scrape_jobs": jobs, "alerts": alerts}, sys.stdout)


if __name__ == "__main__":
    main()
