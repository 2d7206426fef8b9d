# Where would two replicas needing 512 MiB and half a core each go on edge or fog nodes of
# the north zone, preferring edge? And if they do not fit, why not?
data "stratum_placement" "what_if" {
  requirements = {
    cpu       = 0.5
    memory_mb = 512
    tiers     = ["edge", "fog"]
    zone      = "north"
  }
  replicas  = 2
  placement = { prefer_tiers = ["edge"] }
}

output "would_fit" {
  value = data.stratum_placement.what_if.fits
}

output "would_go_to" {
  value = [for p in data.stratum_placement.what_if.placements : "${p.node_name} x${p.replicas}"]
}

output "why_not_elsewhere" {
  value = { for r in data.stratum_placement.what_if.rejected : r.node_name => r.reason }
}
