# Ruby under strict mode: Fiddle closures (libffi's closure API) as qsort
# comparators, threads, a forked child, a temporary file and a pipe.
# Prints "ruby ok <n> callbacks" or fails.
require 'fiddle'
require 'tempfile'

libc = Fiddle.dlopen(nil)
qsort = Fiddle::Function.new(libc['qsort'],
  [Fiddle::TYPE_VOIDP, Fiddle::TYPE_SIZE_T, Fiddle::TYPE_SIZE_T, Fiddle::TYPE_VOIDP],
  Fiddle::TYPE_VOID)
calls = 0
cmp = Fiddle::Closure::BlockCaller.new(Fiddle::TYPE_INT,
                                       [Fiddle::TYPE_VOIDP, Fiddle::TYPE_VOIDP]) do |a, b|
  calls += 1
  x = a.to_s(4).unpack1('l')
  y = b.to_s(4).unpack1('l')
  x <=> y
end
values = (1..5000).map { |i| (i * 7919) % 10007 - 5000 }
buf = Fiddle::Pointer[values.pack('l*')]
qsort.call(buf, values.size, 4, cmp)
sorted = buf.to_s(values.size * 4).unpack('l*')
raise "qsort: wrong order" unless sorted == values.sort
raise "no callbacks" if calls.zero?

threads = (1..4).map { |t| Thread.new { (1..1000).sum * t } }
raise "threads" unless threads.map(&:value) == [500500, 1001000, 1501500, 2002000]
rd, wr = IO.pipe
pid = fork { rd.close; wr.write("child #{Process.pid}"); exit!(7) }
wr.close
msg = rd.read
Process.wait(pid)
raise "fork: #{msg} #{$?.exitstatus}" unless msg.start_with?('child') && $?.exitstatus == 7
Tempfile.create('strict') { |f| f.write('x' * 100); f.flush; raise 'tempfile' unless File.size(f.path) == 100 }
raise 'popen' unless IO.popen(['echo', 'hi'], &:read) == "hi\n"
puts "ruby ok #{calls} callbacks"
