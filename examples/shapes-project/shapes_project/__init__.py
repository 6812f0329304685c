"""This project's own training parts, which trainbench resolves by import path (`shapes_project.nets:tiny_convnet`)
in every process it starts: a model that is not in timm and a metric that is not in trainbench."""
