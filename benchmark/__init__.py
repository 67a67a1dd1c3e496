"""Speed, memory and deployment of the report's models, side by side, as ratios; GPU throughput. Modules: ``common``
(sizes, models, clock, memory), ``training``, ``inference`` (and deployment), ``gpu``, ``run`` (the whole benchmark)."""
