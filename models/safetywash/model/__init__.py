"""The latent-factor model: config and priors, score transform, likelihood, builder, simulation."""
