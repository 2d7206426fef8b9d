# A device fleet: a scoped join token for enrolling its devices, and the devices
# that have joined (nodes of the fleet's tier carrying the fleet's labels).
terraform {
  required_providers {
    stratum = { source = "stratum/stratum" }
  }
}

resource "stratum_join_token" "this" {
  name        = var.name
  tier        = var.tier
  labels      = var.labels
  ttl         = var.token_ttl
  max_uses    = var.max_devices
  description = "join token of fleet ${var.name}"
}

data "stratum_nodes" "members" {
  tier   = var.tier
  labels = var.labels
}
