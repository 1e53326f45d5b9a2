"""Route modules. Each exposes `router`; main.create_app includes them."""
