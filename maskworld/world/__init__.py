"""The world directory (world.json + safetensors) and the Session API."""
