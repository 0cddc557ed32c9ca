"""Adapters that plug real_jax's objectives into other training engines.

Each adapter lives in its own module and imports its engine there, so
`import real_jax` never needs them. Import the one you use:

    import real_jax.integrations.tunix  # registers "real", "grad", ... in Tunix
"""

__all__: list[str] = []
