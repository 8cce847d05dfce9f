import glob, json
path = sorted(glob.glob("results/smoke__naive__seed0__*.json"))[0]
record = json.load(open(path))
for key in ("environment_matrix", "accuracy_matrix", "untrained_accuracy", "samples_trained"):
    print(f"{key}: {record[key]}")
print("learning_curves[0]:", record["learning_curves"][0])
metrics = record["metrics"]
print("metrics:", {key: value for key, value in metrics.items() if key != "forward_facilitation"})
print("forward_facilitation:", metrics["forward_facilitation"])
