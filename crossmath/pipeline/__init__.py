"""Ray Data stages of the evaluation pipeline: render (CPU actors), infer (GPU actors), store."""
