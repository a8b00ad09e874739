"""CLIP models for poolsieve: architectures, loading a scorer, and training with open_clip_train.

Plain functions only (no Dagster). This package imports nothing on purpose: the trainer entry point
(`run_trainer`) must set offline environment variables before open_clip (and huggingface_hub) load.

- `model_configs`: our open_clip architecture JSONs (`configs/*.json`) and `register_configs()`.
- `models`: `ScorerSpec` -> `load_clip()` -> `LoadedClip` (model, preprocess, tokenizer, sha256).
- `train`: `TrainConfig`, DataComp scales, `trainer_args()` and `train_clip()`.
"""
