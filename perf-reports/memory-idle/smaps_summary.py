# usage: smaps_summary.py SMAPS — resident KiB of a /proc/PID/smaps copy by mapping kind (binary by permission, each library, anonymous, [heap]), then the largest anonymous mappings
import sys, re, collections
def parse(path):
    maps=[]; cur=None
    for line in open(path):
        if re.match(r'^[0-9a-f]+-[0-9a-f]+ ', line):
            parts=line.split(None,5)
            cur={'range':parts[0],'perm':parts[1],'off':parts[2],'name':parts[5].strip() if len(parts)>5 else ''}
            maps.append(cur)
        else:
            k,_,v=line.partition(':'); v=v.strip()
            if v.endswith('kB'): cur[k]=int(v.split()[0])
    return maps
maps=parse(sys.argv[1])
cat=collections.Counter(); anon=[]
for m in maps:
    n=m['name']; r=m.get('Rss',0)
    a,b=[int(x,16) for x in m['range'].split('-')]
    size=(b-a)//1024
    if 'forwarder' in n: key='bin '+m['perm']
    elif n.startswith('/'): key='lib '+n.split('/')[-1].split('.so')[0]
    elif n=='': key='anon'; anon.append((r,size,m['perm'],m['range']))
    else: key=n
    cat[key]+=r
for k,v in sorted(cat.items(), key=lambda x:-x[1]):
    if v: print(f"{v:8d} {k}")
print("total", sum(cat.values()))
anon.sort(reverse=True)
print("anon mappings rss>0:", sum(1 for x in anon if x[0]))
for r,s,p,rg in anon[:40]:
    if r: print(f"  rss {r:6d} size {s:8d} {p} {rg}")
