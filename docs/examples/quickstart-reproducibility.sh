clbench evaluate naive -p smoke --seeds 0 --data-root ../shared/data --out a -q
clbench evaluate naive -p smoke --seeds 0 --data-root ../shared/data --out b -q
python - <<'EOF'
import glob
from clbench.records import read_record
a, b = (read_record(glob.glob(f"{d}/*.json")[0]) for d in "ab")
print(a.run_id == b.run_id, a.accuracy_matrix == b.accuracy_matrix)
EOF
