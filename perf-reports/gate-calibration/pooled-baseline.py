import json,random,statistics as st
d=json.load(open('samples.json'))
def q(x,p=0.25):
    x=sorted(x); h=(len(x)-1)*p; lo=int(h); return x[lo]+(x[min(lo+1,len(x)-1)]-x[lo])*(h-lo)
def ratios(samples,arm):
    direct={x['rep']:x for x in samples if x['arm']=='direct'}
    return {x['rep']:x['p50Us']/direct[x['rep']]['p50Us'] for x in samples if x['arm']==arm}
R=random.Random(1)
def p_worse(cur,base,allowed,B=1000):
    return sum(q(R.choices(cur,k=len(cur)))-q(R.choices(base,k=len(base)))<=allowed for _ in range(B))/B
S=d['sessions']
for g in [0.05,0.025]:
  for arm in ['forwarder','forwarder-l7']:
    fa=det=tr=0
    for j in range(len(S)):
        base=sum((list(ratios(S[i]['normal'],arm).values()) for i in range(len(S)) if i!=j),[])
        allowed=max(g*(q(base)-1),0.02)
        rn=ratios(S[j]['normal'],arm); ri=ratios(S[j]['injected'],arm)
        for k in range(20):
            sub=random.sample(sorted(rn),10); tr+=1
            fa+=p_worse([rn[r] for r in sub],base,allowed)<0.01
            det+=p_worse([ri[r] for r in sub],base,allowed)<0.01
    print(g,arm,tr,fa,det/tr)
