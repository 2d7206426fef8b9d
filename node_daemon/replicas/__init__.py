"""Replicas on a node: bento cache (cache.py), `bentoml serve` processes (runner.py), the service
endpoint (router.py) and one service's lifecycle with rolling updates (service.py)."""
