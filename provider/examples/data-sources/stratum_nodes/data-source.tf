# Ready edge nodes of the north zone with at least 2 cores and 2 GiB of memory.
data "stratum_nodes" "north_edge" {
  tier          = "edge"
  labels        = { zone = "north" }
  state         = "ready"
  min_cpu       = 2
  min_memory_mb = 2048
}

# Nodes with a GPU, whatever their tier.
data "stratum_nodes" "gpu" {
  gpu = true
}

output "north_edge_addresses" {
  value = { for n in data.stratum_nodes.north_edge.nodes : n.name => n.addresses }
}

output "gpu_nodes" {
  value = [for n in data.stratum_nodes.gpu.nodes : "${n.name} (${n.gpus} GPU)"]
}
