from clbench.metrics import (average_accuracy, backward_transfer, forgetting,
                             forward_transfer, learning_accuracy, forward_facilitation)

R = [[0.90, 0.12, 0.10],
     [0.93, 0.92, 0.15],
     [0.60, 0.80, 0.94]]
b = [0.10, 0.08, 0.11]
curves = [
    {"samples": [0, 500, 1000, 1500, 2000], "accuracy": [0.10, 0.60, 0.80, 0.85, 0.90]},
    {"samples": [0, 500, 1000, 1500, 2000], "accuracy": [0.12, 0.82, 0.88, 0.90, 0.92]},
    {"samples": [0, 750, 1500, 2250, 3000], "accuracy": [0.11, 0.84, 0.90, 0.91, 0.93]},
]
print(average_accuracy(R), backward_transfer(R), forgetting(R),
      forward_transfer(R, b), learning_accuracy(R))
print(forward_facilitation(curves, threshold=0.8))
