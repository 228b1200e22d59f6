"""Facts: typed models of hosts and guests, and the parsers that build them."""
