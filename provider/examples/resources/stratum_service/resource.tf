# The congestion model of the stratum_model example, trained on the smart-traffic counts.
resource "stratum_dataset" "traffic" {
  name   = "traffic"
  source = "file://data/traffic.csv"
  target = "congestion"
}

resource "stratum_model" "congestion" {
  name           = "congestion"
  dataset        = stratum_dataset.traffic.id
  dataset_digest = stratum_dataset.traffic.digest
  task           = "classification"
  candidates     = ["logistic_regression", "random_forest"]
  preprocessing  = { impute = "median", scale = "standard", one_hot = ["intersection", "weather"] }
  selection      = { metric = "accuracy", cv_folds = 3 }
}

# Two replicas on edge or fog nodes, a quarter of a core each (memory: the model's measured
# footprint). A new model version replaces the replicas one at a time.
resource "stratum_service" "congestion" {
  name     = "congestion"
  model    = stratum_model.congestion.id
  replicas = 2
  requirements = {
    cpu   = 0.25
    tiers = ["edge", "fog"]
  }
}

# Autoscaled: replicas follow the last minute's requests (1 to 4), each replica's cpu quota and
# workers among the sizes measured at packaging, and none runs warm after 15 idle minutes.
resource "stratum_service" "congestion_autoscaled" {
  name  = "congestion-autoscaled"
  model = stratum_model.congestion.id
  slo   = { p95_latency_ms = 200 }
  scaling = {
    mode       = "reactive"
    min        = 1
    max        = 4
    vertical   = true
    zero_after = "15m"
  }
}

# curl -s "$(terraform output -raw congestion_endpoint)/predict" -H 'Content-Type: application/json' \
#   -d '{"instances": [{"intersection": "i-01", "hour": 8, "weekday": 1, "weather": "rain",
#        "temperature_c": 6.5, "vehicles_per_min": 41.0, "pedestrians_per_min": 12.0}]}'
# -> {"predictions": ["medium"]}
output "congestion_endpoint" {
  value = stratum_service.congestion.endpoints[0]
}
