"""Image encoders: the pixel baseline (conv autoencoder), later contrastive/MIM/ADDP/HF backbones."""
