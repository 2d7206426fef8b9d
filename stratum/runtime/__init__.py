"""Running processes on a machine, shared by both daemons: the replica runner (`bentoml serve`
processes), per-process cgroup limits and the latency buckets endpoints count requests in.

The node daemon runs replicas and apps with these; the control plane uses the same runner to
measure a bento when it packages it (control_plane/packaging/profile.py), and the same buckets
to read the percentiles nodes report.
"""
