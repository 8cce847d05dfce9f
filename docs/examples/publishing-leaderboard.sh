clbench evaluate naive  --protocol smoke --seeds 0 1 2 --data-root ../shared/data --out results/ -q
clbench evaluate ewc    --protocol smoke --seeds 0 1 2 --data-root ../shared/data --out results/ -q
clbench evaluate replay --protocol smoke --seeds 0 1 2 --data-root ../shared/data --out results/ -q
clbench leaderboard results/ --protocol smoke
