"""The real single-node Kubernetes of `make cluster`, one module per component.

A second containerd with the CRI plugin (containerd.py), the pod bridge and CNI config
(network.py), the kubelet (kubelet.py), kube-scheduler (scheduler.py), kube-proxy in iptables
mode (proxy.py), CoreDNS (coredns.py) and the images moved into the node without a registry
(images.py). `devstack.cluster` composes them on top of `devstack.kube.ControlPlane`.
"""
