"""Voice folders: a trained acoustic model and HiFi-GAN generator packaged to be shipped.

`resources/voices/<name>/` holds the torch weights, their ONNX graphs (what the `voice` TTS
engine runs, with onnxruntime and no torch), the held-out recording ids, the metrics on them,
the corpus's licence notice and a README with provenance, all listed with their SHA-256 in
`voice.json`. `vestnik.voice.package` reads and checks folders and holds the shipping gate (no
torch); `vestnik.voice.build` makes them from trained models (torch). See docs/voice.md.
"""
