import pandas as pd
import clbench

runs = clbench.load_records(["leaderboards/split-mnist/records"])
print(runs.shape)
print(runs[["method", "environment_kind", "seed", "acc", "forgetting", "exemplars"]].head(3))

# the published table's ACC column, recomputed from the records
acc = runs.groupby("method")["acc"].agg(["mean", "std", "count"]).mul([100, 100, 1])
print(acc.sort_values("mean", ascending=False).round(2).head(5))

published = pd.read_csv("leaderboards/split-mnist/leaderboard.csv", index_col="method")
print("same means as leaderboard.csv:",
      (acc["mean"] / 100 - published["acc_mean"]).abs().max() < 1e-9)

board = clbench.leaderboard_frame(runs)
print(board[["rank", "method", "acc_mean", "acc_ci_low", "acc_ci_high", "significance"]].head(4))
