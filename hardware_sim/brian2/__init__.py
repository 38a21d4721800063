"""The Brian2 backend: a compiled process graph simulated as Brian2 neuron groups and synapses.

:mod:`.model` builds the network from plain node records and needs only brian2 and numpy (the
Brian2 exporter copies it next to the script it writes); :mod:`.backend` feeds it a process graph.
"""
