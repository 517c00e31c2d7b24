# usage: gcdump_per_conn.py GCDUMP N — rows of `dotnet-gcdump report` with at least 97.5% of N objects (the per-connection types), and their bytes summed / N
import sys,re,subprocess
out=subprocess.run(["/root/.dotnet/tools/dotnet-gcdump","report",sys.argv[1]],capture_output=True,text=True).stdout
n=int(sys.argv[2]); total=0; rows=[]
for line in out.splitlines():
    m=re.match(r'\s*([\d,]+)\s+([\d,]+)\s+(.*)',line)
    if not m: continue
    size,count=int(m.group(1).replace(',','')),int(m.group(2).replace(',',''))
    if count>=n*0.975 and size<10000:
        total+=size*count; rows.append(line)
print("\n".join(rows)); print(f"per connection: {total/n:.0f} bytes")
