"""Packaging: model artifact -> BentoML service -> canonical .bento archive -> content-addressed store.

See README.md in this folder.  Entry points: build.build_bento, store.ArtifactStore,
profile.profile_bento, pipeline.package_model_version.
"""
