"""The official Python kubernetes client against skiff.

Run by tests/e2e/python.rs as `client_test.py --kubeconfig PATH` with the
kubeconfig of a fresh server:
creates a namespace and pods (typed models and plain dicts, which the client
sends without apiVersion/kind), lists them with a label selector, watches
them (ADDED, then MODIFIED after a patch from another thread), uses field
selectors and generateName, gets 409/422 ApiExceptions, deletes one and
checks the 404, then deletes the namespace.
"""

import argparse
import json
import threading
import time

from kubernetes import client, config, watch


def main(kubeconfig):
    config.load_kube_config(kubeconfig)
    v1 = client.CoreV1Api()
    ns = "pyclient"
    v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))

    typed = client.V1Pod(
        metadata=client.V1ObjectMeta(name="typed", labels={"app": "web"}),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="registry.local/web:1")]),
    )
    created = v1.create_namespaced_pod(ns, typed)
    assert created.metadata.uid, "server set a uid"
    assert created.spec.restart_policy == "Always", "server applied defaults"
    assert created.status.phase == "Pending"
    v1.create_namespaced_pod(ns, {
        "metadata": {"name": "plain", "labels": {"app": "db"}},
        "spec": {"containers": [{"name": "c", "image": "registry.local/db:1"}]},
    })

    listed = v1.list_namespaced_pod(ns, label_selector="app=web")
    assert [p.metadata.name for p in listed.items] == ["typed"], listed.items
    list_rv = int(listed.metadata.resource_version)
    assert list_rv >= int(created.metadata.resource_version)

    def patch_later():
        time.sleep(1.0)
        v1.patch_namespaced_pod("typed", ns, {"metadata": {"labels": {"tier": "front"}}})

    patcher = threading.Thread(target=patch_later)
    patcher.start()
    seen = []
    w = watch.Watch()
    for event in w.stream(v1.list_namespaced_pod, ns, label_selector="app=web", timeout_seconds=20):
        seen.append((event["type"], event["object"].metadata.name, event["object"].metadata.labels.get("tier")))
        if len(seen) == 2:
            w.stop()
    patcher.join()
    assert seen == [("ADDED", "typed", None), ("MODIFIED", "typed", "front")], seen

    # Resume a watch from the list's revision: only the patch is new.
    resumed = []
    w = watch.Watch()
    for event in w.stream(v1.list_namespaced_pod, ns, resource_version=str(list_rv), timeout_seconds=5):
        resumed.append((event["type"], event["object"].metadata.name))
        if len(resumed) == 1:
            w.stop()
    assert resumed == [("MODIFIED", "typed")], resumed

    # Cluster-wide list with a field selector, and a watch narrowed to one
    # name: the selectors kubectl and controllers lean on.
    everywhere = v1.list_pod_for_all_namespaces(field_selector=f"metadata.namespace={ns}")
    assert sorted(p.metadata.name for p in everywhere.items) == ["plain", "typed"], everywhere.items
    named = []
    w = watch.Watch()
    for event in w.stream(v1.list_namespaced_pod, ns, field_selector="metadata.name=plain", timeout_seconds=5):
        named.append((event["type"], event["object"].metadata.name))
        w.stop()
    assert named == [("ADDED", "plain")], named

    # generateName: the server picks the rest of the name.
    generated = v1.create_namespaced_pod(ns, {
        "metadata": {"generateName": "gen-"},
        "spec": {"containers": [{"name": "c", "image": "registry.local/gen:1"}]},
    })
    assert generated.metadata.name.startswith("gen-") and len(generated.metadata.name) > 4, generated.metadata.name

    # A stale resourceVersion on replace is a 409 Conflict.
    current = v1.read_namespaced_pod("typed", ns)
    stale = client.V1Pod(metadata=client.V1ObjectMeta(name="typed", resource_version=created.metadata.resource_version,
                                                      labels={"app": "web"}), spec=current.spec)
    try:
        v1.replace_namespaced_pod("typed", ns, stale)
        raise AssertionError("a stale replace succeeded")
    except client.ApiException as e:
        assert e.status == 409 and json.loads(e.body)["reason"] == "Conflict", e.body

    # An invalid pod is a 422 naming the field.
    try:
        v1.create_namespaced_pod(ns, {"metadata": {"name": "empty"}, "spec": {"containers": []}})
        raise AssertionError("a pod without containers was created")
    except client.ApiException as e:
        status = json.loads(e.body)
        assert e.status == 422 and status["reason"] == "Invalid", e.body
        assert any(c.get("field") == "spec.containers" for c in status["details"]["causes"]), e.body

    # DELETE with a DeleteOptions body, as the client sends it.
    v1.delete_namespaced_pod("plain", ns, body=client.V1DeleteOptions(propagation_policy="Background"))
    try:
        v1.read_namespaced_pod("plain", ns)
        raise AssertionError("deleted pod is still there")
    except client.ApiException as e:
        assert e.status == 404, e.status

    try:
        v1.create_namespaced_pod(ns, typed)
        raise AssertionError("second create of the same name succeeded")
    except client.ApiException as e:
        assert e.status == 409 and "AlreadyExists" in e.body, e.body

    # Deleting the namespace takes its pods with it.
    v1.delete_namespace(ns)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            phase = v1.read_namespace(ns).status.phase
            assert phase == "Terminating", phase
        except client.ApiException as e:
            assert e.status == 404, e.status
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the namespace was never removed")
    assert v1.list_pod_for_all_namespaces(field_selector=f"metadata.namespace={ns}").items == []

    print("python client: all checks passed")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True, help="kubeconfig written by skiff up")
    main(parser.parse_args().kubeconfig)
