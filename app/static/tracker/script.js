!function(w,d){
var l=w.location,s=d.currentScript,A=function(a){return s.getAttribute("data-"+a)},
U=A("api")||new URL(s.src).origin+"/api/event",H=A("hash")!=null,last;
function t(n,o){o=o||{};var q=o.callback||function(){};
if(/^localhost$|^127(\.\d+){0,2}\.\d+$|^\[::1?\]$/.test(l.hostname)||l.protocol=="file:"||navigator.webdriver||w.Cypress)return q({status:0});
try{if(localStorage.plausible_ignore=="true")return q({status:0})}catch(e){}
var p={n:n,u:o.u||l.href,d:A("domain")||l.hostname,r:d.referrer||null},b;
o.props&&(p.p=o.props);o.revenue&&(p.$=o.revenue);o.interactive===!1&&(p.i=!1);H&&(p.h=1);b=JSON.stringify(p);
w.fetch?fetch(U,{method:"POST",keepalive:!0,body:b}).then(function(r){q({status:r.status})},q):q(navigator.sendBeacon(U,b))}
function v(){if(H||last!=l.pathname){last=l.pathname;t("pageview")}}
var h=w.history,ps=h.pushState,E=w.addEventListener;
if(H)E("hashchange",v);else if(ps){h.pushState=function(){ps.apply(this,arguments);v()};E("popstate",v)}
function c(e){for(var a=e.target;a&&!a.href;)a=a.parentNode;
if(!a||e.type=="auxclick"&&e.button!=1||!/^https?:/.test(a.href))return;
var o={props:{url:a.href}};
if(A("outbound-links")!=null&&a.host!=l.host)t("Outbound Link: Click",o);
else if(A("file-downloads")!=null&&/\.(pdf|xlsx?|docx?|txt|rtf|csv|exe|key|pp[st]x?|7z|pkg|rar|gz|zip|avi|mov|mp4|mpe?g|wmv|midi?|mp3|wav|wma|dmg|iso|msi)$/i.test(a.pathname))t("File Download",o)}
d.addEventListener("click",c);d.addEventListener("auxclick",c);
var Q=w.plausible&&w.plausible.q||[],i=0;w.plausible=t;
for(;i<Q.length;i++)t.apply(w,Q[i]);
v()}(window,document);
