# Counts per intersection and hour: intersection, hour, weekday, weather, temperature_c,
# vehicles_per_min, pedestrians_per_min, and the label to predict, congestion (low/medium/high).
resource "stratum_dataset" "traffic" {
  name   = "traffic"
  source = "file://data/traffic.csv"
  target = "congestion"
}

# Two candidates (the forest over a grid of four points), 3-fold cross-validated on accuracy;
# the best is packaged as a BentoML service that stratum_service serves.
resource "stratum_model" "congestion" {
  name           = "congestion"
  dataset        = stratum_dataset.traffic.id
  dataset_digest = stratum_dataset.traffic.digest # new rows in the file train a new version
  task           = "classification"
  candidates     = ["logistic_regression", "random_forest"]
  grids = {
    random_forest = jsonencode({ n_estimators = [50, 100], max_depth = [8, 12] })
  }
  preprocessing = {
    impute  = "median"
    scale   = "standard"
    one_hot = ["intersection", "weather"]
  }
  selection = {
    metric   = "accuracy"
    cv_folds = 3
  }
  seed = 1

  # Retrain daily, and as soon as the inputs the service receives drift; a new version
  # rolls out only if it scores no worse than the serving one. To roll back, set
  #   pinned_version = "<an earlier entry of versions>"
  retrain = {
    max_age  = "24h"
    on_drift = true
  }
}

# The same data, a wider search: its folds run as dask tasks on the cloud nodes labelled
# pool = "training" (one worker process per core) instead of beside the control plane, and
# give the version a local training would. Plan fails when no ready node matches.
resource "stratum_model" "congestion_wide" {
  name       = "congestion-wide"
  dataset    = stratum_dataset.traffic.id
  task       = "classification"
  candidates = ["random_forest", "gradient_boosting"]
  grids = {
    random_forest     = jsonencode({ n_estimators = [100, 200, 400], max_depth = [8, 12, 16] })
    gradient_boosting = jsonencode({ n_estimators = [100, 200], learning_rate = [0.05, 0.1] })
  }
  preprocessing = {
    impute  = "median"
    one_hot = ["intersection", "weather"]
  }
  training = {
    engine  = "dask"
    workers = { tiers = ["cloud"], labels = { pool = "training" } }
  }
}

output "congestion_model" {
  value = {
    version        = stratum_model.congestion.version
    best_algorithm = stratum_model.congestion.best_algorithm
    score          = stratum_model.congestion.score
    leaderboard    = [for e in stratum_model.congestion.leaderboard : "${e.algorithm} ${e.params}: ${e.score}"]
  }
}
