"""One module per tab of the labeling app (label, review, admin, models): each builds its
components and wires its handlers; the services own the rules."""
