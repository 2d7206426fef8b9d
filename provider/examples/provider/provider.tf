terraform {
  required_providers {
    stratum = {
      source = "stratum/stratum"
    }
  }
}

# All three settings can come from the environment instead:
# STRATUM_ENDPOINT, STRATUM_TOKEN and STRATUM_CA_CERT.
provider "stratum" {
  endpoint = "127.0.0.1:7443"
  ca_cert  = "/var/lib/stratum/ca.pem" # ca.pem in the control plane's data dir
  # token: leave it out of HCL and export STRATUM_TOKEN="$(cat /var/lib/stratum/admin.token)"
}
