"""Drawing compiled workflows with Graphviz (`mnc graph`)."""
