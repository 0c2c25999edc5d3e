"""The official Python kubernetes client against skiff.

Run by tests/e2e/python.rs with the kubeconfig of a fresh server:
creates a namespace and pods (typed models and plain dicts, which the client
sends without apiVersion/kind), lists them with a label selector, watches
them (ADDED, then MODIFIED after a patch from another thread), deletes one
and checks the 404.
"""

import sys
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

    v1.delete_namespaced_pod("plain", ns)
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

    print("python client: all checks passed")


if __name__ == "__main__":
    main(sys.argv[1])
