"""fcbench: a Flower 1.42 app (FedAvg, MNIST CNN, tiny workload) timed by bench/round_overhead.py."""
