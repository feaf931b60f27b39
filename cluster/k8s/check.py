#!/usr/bin/env python3
"""Checks the Kubernetes manifests in this directory without a cluster.

1. Schema: every object is checked against the Kubernetes API's own models (the official Python
   client, generated from the API's OpenAPI spec): unknown fields, wrong types and missing
   required fields are errors, as `kubectl apply --validate=strict` would make them.
2. Tributary's own rules: the StatefulSet spreads over zones, takes its AZ from the zone label,
   probes /health, is covered by the PodDisruptionBudget and the headless service, and sets
   only TRIBUTARY_* variables that `tributary node` reads (from `tributary node --help`).

Usage: check.py [--binary PATH_TO_TRIBUTARY]; exits non-zero with every problem listed.
"""

import argparse
import pathlib
import re
import subprocess
import sys

import kubernetes.client as k8s
import yaml

HERE = pathlib.Path(__file__).resolve().parent

MODELS = {
    ("v1", "Namespace"): "V1Namespace",
    ("v1", "Service"): "V1Service",
    ("apps/v1", "StatefulSet"): "V1StatefulSet",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
}

PRIMITIVES = {
    "str": (str,),
    "int": (int,),
    "bool": (bool,),
    "float": (int, float),
    "datetime": (str,),
    "date": (str,),
}


def check_value(value, type_name, path, problems):
    """Walks `value` against the client's type string (`V1PodSpec`, `List[V1Container]`, ...)."""
    if type_name == "object":  # IntOrString, quantities, free-form
        return
    match = re.fullmatch(r"List\[(.+)\]", type_name)
    if match:
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, found {type(value).__name__}")
            return
        for index, item in enumerate(value):
            check_value(item, match.group(1), f"{path}[{index}]", problems)
        return
    match = re.fullmatch(r"Dict\[str, (.+)\]", type_name)
    if match:
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a map, found {type(value).__name__}")
            return
        for key, item in value.items():
            check_value(item, match.group(1), f"{path}.{key}", problems)
        return
    if type_name in PRIMITIVES:
        expected = PRIMITIVES[type_name]
        if isinstance(value, bool) and bool not in expected:
            problems.append(f"{path}: expected {type_name}, found a boolean")
        elif not isinstance(value, expected):
            problems.append(f"{path}: expected {type_name}, found {type(value).__name__}")
        return
    model = getattr(k8s, type_name, None)
    if model is None:
        problems.append(f"{path}: the checker does not know type {type_name}")
        return
    if not isinstance(value, dict):
        problems.append(f"{path}: expected a {type_name} object, found {type(value).__name__}")
        return
    fields = {json_name: attr for attr, json_name in model.attribute_map.items()}
    for key, item in value.items():
        if key not in fields:
            problems.append(f"{path}.{key}: unknown field of {type_name}")
            continue
        check_value(item, model.openapi_types[fields[key]], f"{path}.{key}", problems)


def check_required(document, model_name, path, problems):
    """The client's models refuse missing required fields when built; build the whole tree."""
    try:
        k8s.ApiClient()._ApiClient__deserialize(document, model_name)
    except (ValueError, TypeError) as error:
        problems.append(f"{path}: {error}")


def node_env_vars(binary):
    """The TRIBUTARY_* variables `tributary node` reads, from its --help."""
    output = subprocess.run(
        [binary, "node", "--help"], check=True, capture_output=True, text=True
    ).stdout
    return set(re.findall(r"env: (TRIBUTARY_[A-Z_]+)=", output))


def check_tributary_rules(objects, binary, problems):
    by_kind = {}
    for path, document in objects:
        by_kind.setdefault(document["kind"], []).append((path, document))
    statefulsets = by_kind.get("StatefulSet", [])
    if len(statefulsets) != 1:
        problems.append(f"expected one StatefulSet, found {len(statefulsets)}")
        return
    path, statefulset = statefulsets[0]
    spec = statefulset["spec"]
    pod = spec["template"]["spec"]
    pod_labels = spec["template"]["metadata"]["labels"]

    zone_spread = [
        c
        for c in pod.get("topologySpreadConstraints", [])
        if c.get("topologyKey") == "topology.kubernetes.io/zone"
        and c.get("whenUnsatisfiable") == "DoNotSchedule"
    ]
    if not zone_spread:
        problems.append(f"{path}: pods must be spread over zones (DoNotSchedule)")
    if spec.get("ordinals", {}).get("start") != 1:
        problems.append(f"{path}: node ids are ordinals from 1 (spec.ordinals.start: 1)")

    container = pod["containers"][0]
    env = {e["name"]: e for e in container.get("env", [])}
    az_source = env.get("TRIBUTARY_AZ", {}).get("valueFrom", {}).get("fieldRef", {})
    if az_source.get("fieldPath") != "metadata.labels['topology.kubernetes.io/zone']":
        problems.append(f"{path}: TRIBUTARY_AZ must come from the pod's zone label")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        http_get = container.get(probe, {}).get("httpGet", {})
        if http_get.get("path") != "/health":
            problems.append(f"{path}: {probe} must GET /health")
    if binary:
        known = node_env_vars(binary)
        for name in env:
            if name.startswith("TRIBUTARY_") and name not in known:
                problems.append(f"{path}: `tributary node` reads no variable {name}")

    def selects(selector):
        return all(pod_labels.get(k) == v for k, v in selector.items())

    pdbs = by_kind.get("PodDisruptionBudget", [])
    if not any(selects(d["spec"]["selector"].get("matchLabels", {})) for _, d in pdbs):
        problems.append("no PodDisruptionBudget selects the Tributary pods")
    services = {d["metadata"]["name"]: d for _, d in by_kind.get("Service", [])}
    headless = services.get(spec["serviceName"])
    if headless is None:
        problems.append(f"{path}: serviceName {spec['serviceName']} is not defined")
    else:
        if headless["spec"].get("clusterIP") != "None":
            problems.append(f"service {spec['serviceName']} must be headless (clusterIP: None)")
        if not headless["spec"].get("publishNotReadyAddresses"):
            problems.append(
                f"service {spec['serviceName']} must publish not-ready addresses: "
                "nodes find each other before they are ready"
            )
        if not selects(headless["spec"]["selector"]):
            problems.append(f"service {spec['serviceName']} does not select the pods")
    ports = {p["name"] for p in container.get("ports", [])}
    for service in services.values():
        for port in service["spec"]["ports"]:
            if isinstance(port.get("targetPort"), str) and port["targetPort"] not in ports:
                problems.append(
                    f"service {service['metadata']['name']}: targetPort {port['targetPort']} "
                    "is not a container port"
                )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", help="the tributary binary, to check variable names")
    args = parser.parse_args()
    problems = []
    kustomization = yaml.safe_load((HERE / "kustomization.yaml").read_text())
    objects = []
    for resource in kustomization["resources"]:
        path = HERE / resource
        if not path.exists():
            problems.append(f"kustomization.yaml lists {resource}, which does not exist")
            continue
        for index, document in enumerate(yaml.safe_load_all(path.read_text())):
            if document is None:
                continue
            where = f"{resource}#{index}"
            key = (document.get("apiVersion"), document.get("kind"))
            model = MODELS.get(key)
            if model is None:
                problems.append(f"{where}: unexpected object {key}")
                continue
            check_value(document, model, where, problems)
            check_required(document, model, where, problems)
            objects.append((where, document))
    unlisted = {p.name for p in HERE.glob("*.yaml")} - set(kustomization["resources"])
    unlisted.discard("kustomization.yaml")
    if unlisted:
        problems.append(f"manifests not in kustomization.yaml: {sorted(unlisted)}")
    check_tributary_rules(objects, args.binary, problems)
    if problems:
        print("cluster/k8s: {} problem(s):".format(len(problems)))
        for problem in problems:
            print(f"  - {problem}")
        return 1
    print(f"cluster/k8s: {len(objects)} objects valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
