# Quickstart: issue a join token for a fleet of edge devices and list every node.
# The provider reads STRATUM_ENDPOINT, STRATUM_TOKEN and STRATUM_CA_CERT.
terraform {
  required_providers {
    stratum = { source = "stratum/stratum" }
  }
}

provider "stratum" {}

module "north_fleet" {
  source      = "../../fleet"
  name        = "north-fleet"
  tier        = "edge"
  labels      = { zone = "north" }
  token_ttl   = "24h"
  max_devices = 50
}

data "stratum_nodes" "all" {}

output "north_fleet_join_token" {
  value     = module.north_fleet.join_token
  sensitive = true
}

output "nodes" {
  value = [for n in data.stratum_nodes.all.nodes : {
    name      = n.name
    tier      = n.tier
    state     = n.state
    cpu_cores = n.cpu_cores
    memory_mb = n.memory_mb
    arch      = n.arch
    addresses = n.addresses
  }]
}
