# One node by name (or give `id = "node-…"` instead).
data "stratum_node" "box1" {
  name = "box-1"
}

output "box1" {
  value = {
    arch       = data.stratum_node.box1.arch
    cpu        = "${data.stratum_node.box1.cpu_cores} x ${data.stratum_node.box1.cpu_model}"
    memory_mb  = data.stratum_node.box1.memory_mb
    gpu_models = data.stratum_node.box1.gpu_models
    state      = data.stratum_node.box1.state
  }
}
