"""Speed, memory and deployment of the report's models, measured side by side, as ratios; GPU throughput. One
process, one data set, compared variants interleaved (background load hits all alike). Import a name's own module:
- ``common``      how much work each measurement does, the models it times, the one clock, peak memory;
- ``training``    naive vs ours, distillation vs baseline step; the teacher-logit pass first and cached;
- ``inference``   student vs teacher at batch 1 and 32; deployment (fp32 / int8 on CPU, with accuracy); speed table;
- ``gpu``         GPU throughput, measured: training at the planner's batch and padded tokens, matmul peak share;
- ``run``         the benchmark: every measurement, ratios, targets, ``results/benchmark/<hardware>.json``, tables.
"""
