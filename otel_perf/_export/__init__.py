"""The push-export edge: OTLP and console exporters fed by a forwarder thread that reads the
pipeline's one reader, with delta temporality computed from consecutive collections.
"""
