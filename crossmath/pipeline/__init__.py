"""The evaluation pipeline: request and evaluation identities, the Ray Data stages (render on
CPU actors, infer on GPU actors), the prediction store, results folders and failure counts."""
