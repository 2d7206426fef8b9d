# Apps of the smart-traffic pipeline: an MQTT broker on a fog node, a stream processor on the
# edge nodes that reads from it, and an hourly aggregation in the cloud whose output becomes the
# next version of a dataset. In HCL, "$${NAME}" is the app's variable ${NAME} ("${...}" alone
# would be Terraform's own interpolation).

# A binary the node has (requirements.binaries), on a fixed port, healthy once the port accepts
# connections.
resource "stratum_app" "broker" {
  name    = "broker"
  kind    = "service"
  command = "mosquitto"
  args    = ["-p", "$${STRATUM_PORT_MQTT}"]
  ports   = { mqtt = 1883 }
  health  = { tcp = "mqtt", interval = "10s", grace = "5s" }
  requirements = {
    tiers    = ["fog"]
    binaries = ["mosquitto"]
  }
}

# A directory of scripts (uploaded by digest, unpacked in each instance's working directory).
# connects_to gives every instance STRATUM_BROKER_URL (mqtt://<host>:1883), the broker endpoint
# nearest to its node; instances start once the broker has one.
resource "stratum_app" "processor" {
  name        = "processor"
  kind        = "service"
  artifact    = "apps"
  command     = "python3"
  args        = ["processor.py", "--broker", "$${STRATUM_BROKER_URL}"]
  env         = { TOPIC = "traffic/counts" }
  connects_to = [stratum_app.broker.id]
  replicas    = 2
  requirements = {
    cpu       = 0.25
    memory_mb = 128
    tiers     = ["edge"]
  }
  restart      = { attempts = 5, interval = "10m", delay = "2s" }
  kill_timeout = "5s"
}

resource "stratum_dataset" "hourly" {
  name   = "traffic-hourly"
  source = "file://data/traffic-hourly.csv"
}

# Every hour (Berlin time), one run: the CSV it writes to $STRATUM_OUTPUT replaces the dataset's
# rows as its next version. The history database's password comes from Vault, never from state.
resource "stratum_app" "aggregate" {
  name       = "aggregate"
  kind       = "periodic"
  artifact   = "apps/aggregate.py"
  command    = "python3"
  args       = ["aggregate.py", "--out", "$${STRATUM_OUTPUT}"]
  secret_env = { HISTORY_PASSWORD = "secret/stratum/history#password" }
  schedule = {
    cron             = "0 * * * *"
    time_zone        = "Europe/Berlin"
    prohibit_overlap = true
  }
  outputs      = { dataset = stratum_dataset.hourly.id, mode = "replace" }
  requirements = { tiers = ["cloud"], memory_mb = 512 }
}

output "broker_endpoints" {
  value = stratum_app.broker.endpoints["mqtt"]
}
