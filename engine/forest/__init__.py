"""Tree ensembles: compile XGBoost / LightGBM models into the engine's Forest format and evaluate them natively."""
