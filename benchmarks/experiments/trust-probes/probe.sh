P=${PYTHON:-python}; R=$(dirname "$0")/../../../run_recbole.py
probe() { out=$(timeout 300 $P $R "$@" --epochs=1 --show_progress=False 2>&1); rc=$?; last=$(echo "$out" | grep -v '^\s*$' | tail -1 | cut -c1-160); tb=$(echo "$out" | grep -c Traceback); echo "rc=$rc tb=$tb | $* | $last"; }
probe --seed=2.5
probe --seed=99999999999
probe --learning_rate=-0.1
probe --learning_rate=abc
probe --weight_decay=1e999
probe --eval_batch_users=-5
probe --resume_every=0
probe --ema_decay=-0.1
probe --train_batch_size=1.5
probe --topk=[10,-1]
probe --metrics=[Recall] --valid_metric=NDCG@10
probe --model=LDiffRec --n_cate=0
probe --model=LDiffRec --n_cate=100000
probe --model=FlowCF --steps=0
probe --model=GiffCF --embedding_size=0
probe --model=DiffuRec --MAX_ITEM_LIST_LENGTH=1
probe --model=TDiffRec --w_min=0
probe --checkpoint_dir=/proc/x
probe --dataset=../etc
probe --data_path=/nonexistent
probe --eval_args="{'split':{'RS':[0.8,0.1]}}"
probe --eval_args="{'split':{'RS':[0.0,0.0,1.0]},'order':'RO','mode':'full','group_by':'user'}"
probe --duplicate_interactions=maybe
probe --input_path=fast
