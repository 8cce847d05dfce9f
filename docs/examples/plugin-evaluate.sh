clbench evaluate mymethod --protocol smoke --data-root ../shared/data --out results -q
