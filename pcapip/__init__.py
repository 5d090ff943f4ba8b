"""pcapip: who is the real client behind this L4 proxy?

Reads captures, dissects TOA options and PROXY protocol headers, and maps every
flow's egress address to the real client address.
"""

__version__ = "0.1.0"
