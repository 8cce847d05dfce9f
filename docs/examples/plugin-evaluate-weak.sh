clbench evaluate mymethod --protocol smoke --seeds 0 --hp strength=0.01 --data-root ../shared/data --out results -q
