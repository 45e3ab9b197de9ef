"""graph.graphml declares one type per attribute name, so that graph libraries other than networkx
(igraph, Gephi, yEd) open it; graph.json keeps the original values. No models."""
import json
import xml.etree.ElementTree as ET
from collections import defaultdict

import networkx as nx
import numpy as np
import pytest

from ecosim.store.graph import load, save

NS = "{http://graphml.graphdrawing.org/xmlns}"


def mixed_graph() -> nx.DiGraph:
    G = nx.DiGraph(scenario="mixed", datasets={"a": ["x"]})
    G.add_node("base:tiny", kind="base", size="tiny", seed=0)              # size: a string here
    G.add_node("a/g0/numbers", kind="dataset", size=7206, share=0.5)         # ... an int here
    G.add_node("a/g0/numbers/kept", kind="dataset", size=7000, share=1)      # share: float and int
    G.add_node("a/g0", kind="model", owl=np.float64(0.25), done=True, units=[1, 2], gone=None)
    G.add_node("a/g1", kind="model", owl=0.5, done=1)                        # done: bool and int
    G.add_edge("a/g0", "a/g0/numbers", kind="generated", weight=1)
    G.add_edge("a/g0/numbers", "a/g0/numbers/kept", kind="filtered", weight=0.5)
    G.add_edge("a/g0/numbers/kept", "a/g1", kind="trained_on", weight="all")  # weight: str wins
    return G


def key_types(path) -> dict:
    types = defaultdict(set)
    for k in ET.parse(path).getroot().iter(f"{NS}key"):
        types[(k.get("for"), k.get("attr.name"))].add(k.get("attr.type"))
    return types


def test_graphml_has_one_type_per_key(tmp_path):
    G = mixed_graph()
    save(G, tmp_path)
    types = key_types(tmp_path / "graph.graphml")
    assert {k: t for k, t in types.items() if len(t) > 1} == {}
    assert types[("node", "size")] == {"string"}
    assert types[("node", "share")] == {"double"}
    assert types[("node", "owl")] == {"double"}
    assert types[("node", "done")] == {"double"}
    assert types[("edge", "weight")] == {"string"}
    assert types[("node", "units")] == {"string"}             # a list, as JSON
    assert ("node", "gone") not in types                      # None: dropped
    H = nx.read_graphml(tmp_path / "graph.graphml")
    assert H.nodes["a/g0/numbers"]["size"] == "7206" and H.nodes["base:tiny"]["size"] == "tiny"
    assert H.nodes["a/g0/numbers/kept"]["share"] == 1.0
    assert json.loads(H.nodes["a/g0"]["units"]) == [1, 2]
    # graph.json (what the engine reads) keeps the original types
    J = load(tmp_path)
    assert J.nodes["a/g0/numbers"]["size"] == 7206 and J.nodes["a/g0/numbers/kept"]["share"] == 1
    assert J.edges["a/g0", "a/g0/numbers"]["weight"] == 1


def test_graphml_opens_in_igraph(tmp_path):
    igraph = pytest.importorskip("igraph")
    save(mixed_graph(), tmp_path)
    g = igraph.Graph.Read_GraphML(str(tmp_path / "graph.graphml"))
    assert (g.vcount(), g.ecount()) == (5, 3)
    assert sorted(g.vs["size"], key=str)[-1] == "tiny"
    assert set(g.es["kind"]) == {"generated", "filtered", "trained_on"}
